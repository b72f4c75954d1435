"""Patrol (智能轮巡): which camera is looked at next, and how often."""
