"""The CUDA source of minivae's fused kernel and its CPU emulation header: the package
``minivae.kernels`` (the repository's top-level ``kernels/`` is a link to this folder), read with
``importlib.resources`` (:func:`minivae.cuda.kernel_source`), so that an installed package and a
clone behave the same."""
