"""feedbot.relevance"""
