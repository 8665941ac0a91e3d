"""Isotonic data augmentation for knowledge distillation (Cui & Yan, IJCAI 2021), reproduced.

Modules: :mod:`.data` (data sets), :mod:`.models` (ResNets), :mod:`.augment` (Mixup/CutMix and the
label order), :mod:`.losses` (KD, KD-aug, KD-i, KD-p), :mod:`.train` (the loop), :mod:`.analysis`
(figures and tables), :mod:`.experiment` (the pipeline), ``python -m examples.kd`` (the runner).
"""
