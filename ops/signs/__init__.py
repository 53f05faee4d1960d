"""ops/signs"""
