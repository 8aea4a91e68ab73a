package sim

import "github.com/golang-jwt/jwt/v5"

func registered(sub string) jwt.RegisteredClaims { return jwt.RegisteredClaims{Subject: sub} }
