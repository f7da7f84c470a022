"""feedbot.store"""
