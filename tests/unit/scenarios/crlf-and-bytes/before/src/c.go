one
twostill two
café
