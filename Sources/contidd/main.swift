print("contidd")
