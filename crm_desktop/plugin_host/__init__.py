"""The plugin host: manifests, discovery, loading, lifecycle, permissions (no Qt here).

The entry point is :class:`crm_desktop.plugin_host.host.PluginHost`. This
package's ``__init__`` stays empty so that importing one part (the policy,
the bundle verifier) does not import the others.
"""
