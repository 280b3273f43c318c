"""The pristine exercise files of the labs (``labNN.py`` is ``labs/NN_name/exercise.py``).

``python -m minivae.labs reset N`` copies one back; CI checks that the repository's copies
are identical. They are not meant to be imported.
"""
