package x

func A() {}
