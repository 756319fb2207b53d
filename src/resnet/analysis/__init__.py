"""Evidence: the paper's figures and tables, diagnostics of layer responses and gradient flow."""
