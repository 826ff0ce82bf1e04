one
TWOstill two
café!
