"""rkt.formats"""
