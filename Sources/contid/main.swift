print("contid")
