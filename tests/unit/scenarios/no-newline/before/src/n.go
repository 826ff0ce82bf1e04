package n

var x = 1