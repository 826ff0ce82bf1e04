package n

var x = 2
