# cmake -DIN=FILE -DOUT=FILE.c -DNAME=SYMBOL -P embed_file.cmake: FILE's bytes as a C array
# (const unsigned char SYMBOL[], const unsigned int SYMBOL_len), for static files a tool serves.
file(READ "${IN}" hex HEX)
string(LENGTH "${hex}" digits)
math(EXPR bytes "${digits} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," array "${hex}")
file(WRITE "${OUT}" "/* generated from ${IN} by embed_file.cmake */\nconst unsigned char ${NAME}[] = {${array}0};\nconst unsigned int ${NAME}_len = ${bytes};\n")
