"""rkt.abi"""
