"""An example magic-nas plugin: the ``mlp`` space and the ``hill-climb`` searcher."""
