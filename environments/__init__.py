"""Environment families, one subpackage each; each imports its engine only when used."""
