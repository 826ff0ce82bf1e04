package x

func B() {}
