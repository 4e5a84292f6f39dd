"""Where items come from: im2rec ``.lst`` files (``lists``), folders of images
(``discover``: ``make_list``), and the images of a list, read and preprocessed (``image_list``).

May import ``errors``, ``options``, ``format``, ``storage`` and ``images``; never ``pipeline``
or ``gluon``.
"""
