"""rkt.config"""
