"""rkt.store"""
