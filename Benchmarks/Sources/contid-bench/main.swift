print("contid-bench")
