# Sphinx configuration of the course website. `python -m course site` stages the pages into
# build/site-src/ (see course/site.py) and builds them with this file; nothing here is run by hand.
#
# Offline by construction: the theme ships its own fonts, icons and scripts; math is MathJax 3
# from the `sphinx-mathjax-offline` wheel, copied into _static/; search is Sphinx's own index;
# ipywidgets' loader scripts (a CDN by default) are switched off; notebooks are never executed.
project = "PyTorch Course Workbook"
author = "the course authors"
copyright = "the course authors"

extensions = [
    "myst_nb",                 # notebooks and Markdown pages (MyST), stored outputs as they are
    "sphinx.ext.autodoc",      # the going_modular API reference, from its docstrings
    "sphinx.ext.napoleon",     # Google-style docstrings (STYLE.md)
    "sphinx.ext.viewcode",     # each API page links to its highlighted source
    "sphinx-mathjax-offline",  # MathJax 3.2.2 served from _static/mathjax, never a CDN
]

# -- notebooks: render the committed outputs, never run anything
nb_execution_mode = "off"
nb_ipywidgets_js = {}          # no widget-manager scripts from a CDN (progress bars are dropped at staging)
nb_merge_streams = True        # one block per cell for consecutive prints
nb_output_stderr = "show"
nb_render_error_lexer = "myst-ansi"  # the exercises' checks raise with a message, not a Python traceback
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence"]
# MathJax matches the text's x-height (about 127 %); a little smaller keeps lesson 08's four
# numbered equations inside the text column at a laptop's width.
mathjax3_config = {"chtml": {"scale": 0.9}}
myst_heading_anchors = 3
suppress_warnings = [
    "myst.header",                # lessons may jump a heading level in prose
    "misc.highlighting_failure",  # a %%writefile cell of YAML or Markdown is shown unhighlighted
]

# -- API reference
autodoc_member_order = "bysource"
# a module's __all__ may re-export a class (data_setup keeps TensorCacheDataset importable):
# each class is documented once, on the page of the module that defines it
autodoc_default_options = {"members": True, "show-inheritance": True, "ignore-module-all": True}
autodoc_typehints = "signature"
napoleon_google_docstring = True
napoleon_numpy_docstring = False
default_role = "py:obj"        # `name` in a docstring: code, linked when it names something documented

# -- HTML
smartquotes = False           # quotes stay as typed: prose quotes code and printed output
html_theme = "sphinx_book_theme"
html_title = "PyTorch Course Workbook"
html_static_path = ["_static"]
html_css_files = ["course.css"]
html_copy_source = False       # the notebook links go to the committed .ipynb files instead
html_show_sourcelink = False
html_last_updated_fmt = None
html_theme_options = {
    "use_download_button": False,
    "use_fullscreen_button": False,
    "show_navbar_depth": 1,
    "home_page_in_toc": True,
    "navigation_with_keys": False,
    "navbar_persistent": [],   # one search field (in the sidebar), not a second one in a header bar
    "secondary_sidebar_items": {"**": ["page-toc"], "index": []},  # the course map gets the width
}
templates_path = []
exclude_patterns = ["_notebook_files/**", "**/.ipynb_checkpoints"]
