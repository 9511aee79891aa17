"""Tests of the Entra source (importer.graph)."""
