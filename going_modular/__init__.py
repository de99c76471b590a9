# Written by notebooks/00_pytorch_fundamentals.ipynb: edit the notebook, not this file.
"""going_modular: the helper package this course's notebooks write, one module per lesson idea.

Each module starts with a line naming the notebook that writes it with `%%writefile`.
"""
