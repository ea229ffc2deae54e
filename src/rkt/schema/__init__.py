"""rkt.schema"""
