package server_test

import "github.com/golang-jwt/jwt/v5"

func subjectClaims(sub string) jwt.RegisteredClaims { return jwt.RegisteredClaims{Subject: sub} }
