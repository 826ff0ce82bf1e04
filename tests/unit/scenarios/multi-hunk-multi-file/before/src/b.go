b1
b2
b3
