"""shapes/studies"""
