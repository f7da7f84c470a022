"""feedbot.web"""
