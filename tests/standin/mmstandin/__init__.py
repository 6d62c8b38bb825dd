"""Release stand-in for the Mattermost server: a small program that behaves like `bin/mattermost`.

It is test infrastructure only (see docs/dev/standin-contract.md). It runs from a zipapp installed as
`mattermost/bin/mattermost`, uses only the Python standard library and supports Python 3.9 to 3.13.
"""
