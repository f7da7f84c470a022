"""feedbot.publish"""
