"""The text study: the paper's Table 4 analogue (Mixup-Transformer distillation), see
``python -m examples.kd.text --help`` and examples/kd/README.md."""
