"""importer: keeps Jira Service Management Assets in step with Microsoft Entra ID."""

__version__ = "0.1.0"
__all__ = ["__version__"]
