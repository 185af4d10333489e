print("wsss")
