"""The rkt command line: parsing, dispatch and output. The only place that prints or exits."""
