"""lit_tv's vectors in other tools: an answerer any harness can call, and lmms-eval's ``lit_tv`` model."""
