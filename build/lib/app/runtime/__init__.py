"""Everything that knows Faust's internals; see README.md here for the defects we patch."""
