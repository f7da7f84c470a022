"""feedbot.notify"""
