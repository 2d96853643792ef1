"""The Qt side of plugins: what the headless :mod:`crm_desktop.plugin_host` leaves to the UI.

* :mod:`.adapter`: :class:`~.adapter.QtPluginAdapter` turns contributions into Qt objects.
* :mod:`.watcher`: ``--dev`` reloads a plugin when its files stop changing.
* :mod:`.check`: ``crm-desktop plugin check`` builds each panel offscreen.
"""
