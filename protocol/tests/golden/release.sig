parta-release-signature 1
name = parta-agent
version = 0.2.0
target = x86_64-linux
size = 41
sha256 = 7995d0d9bea024728430b775f3c08a8f749cbfaa2982be35785bbf97d22ecb09
key = beeedfc4dfe45165
signature = 81bb3d085b12807381d7b75e4868d0c5dff66a8845bd0f3b47da374ce629f8b2a2fa4c32a4e27e94c2cbaaae1857b9ce0441f21e710b08f6194f209ee6ac530e
