"""Tools for the project's maintainers, run from a checkout; not packaged, never installed on servers."""
