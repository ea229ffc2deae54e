"""rkt.fetch"""
