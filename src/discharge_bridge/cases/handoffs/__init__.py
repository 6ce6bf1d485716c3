"""Handoffs: where a patient goes after discharge, who receives them, and the documents that go along."""
