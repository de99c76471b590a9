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
myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 3
suppress_warnings = [
    "myst.header",                # lessons may jump a heading level in prose
    "misc.highlighting_failure",  # a %%writefile cell of YAML or Markdown is shown unhighlighted
]

# -- API reference
autodoc_member_order = "bysource"
autodoc_default_options = {"members": True, "show-inheritance": True}
autodoc_typehints = "signature"
napoleon_google_docstring = True
napoleon_numpy_docstring = False

# -- HTML
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
}
templates_path = []
exclude_patterns = ["_notebook_files/**", "**/.ipynb_checkpoints"]
