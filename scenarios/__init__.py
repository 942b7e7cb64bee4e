"""The shipped scenarios (package data of ``mpay.scenarios``): ``mpay scenarios`` lists them."""
