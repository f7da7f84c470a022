"""feedbot.importers"""
