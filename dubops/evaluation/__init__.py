"""The papers' evaluation metrics, computed offline; one module per metric family."""
