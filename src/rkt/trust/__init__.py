"""rkt.trust"""
