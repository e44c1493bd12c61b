"""tinykv: a splitbrain target (the plugin in plugin.py, the node program in node.py)."""
