"""Tests of the Assets target (importer.assets)."""
