// The gyrus experiment language.
//
// This grammar only recognises the syntax; compiler/src/BuildAst.cpp turns the parse
// tree into gyrus's own AST (no ANTLR type is used past that file). Operator
// precedence follows the order of the `expr` alternatives (tightest first).
grammar Gyrus;

file
  : decl* EOF
  ;

// The value of a `--set PATH=VALUE` override.
exprOnly
  : expr EOF
  ;

decl
  : 'use' (module=path | target=STRING)                                                # useDecl
  | kind=('dataset' | 'pipeline' | 'encoder' | 'objective' | 'let') name=ID params? '=' expr  # bindDecl
  | 'pretrain' name=ID '{' field* '}'                                                  # pretrainDecl
  | 'evaluate' (name=ID '=')? model=ID 'on' task=path argList?                         # evaluateDecl
  | 'sweep' path (',' path)* 'in' values=expr                                          # sweepDecl
  ;

field
  : name=ident '=' expr (';' | ',')?
  ;

// The parameters of a parameterised definition: `pipeline views(p = 50%) = ...`.
params
  : '(' (param (',' param)* ','?)? ')'
  ;

param
  : name=ID ('=' value=expr)?
  ;

path
  : ident ('.' ident)*
  ;

// Keywords are reserved at the start of a declaration only: a block field, an
// argument or a member may be called `encoder` or `objective`.
ident
  : ID | 'dataset' | 'pipeline' | 'encoder' | 'objective' | 'let' | 'pretrain' | 'evaluate' | 'on'
  | 'sweep' | 'in' | 'use'
  ;

expr
  : expr '.' ident                       # memberExpr
  | expr argList                         # callExpr
  | '-' expr                             # negExpr
  | <assoc = right> expr '^' expr        # powExpr
  | expr op=('*' | '/') expr             # mulExpr
  | expr op=('+' | '-') expr             # addExpr
  | expr '..' expr                       # rangeExpr
  | expr '>>' expr                       # composeExpr
  | expr '|>' expr                       # applyExpr
  | primary                              # primaryExpr
  ;

argList
  : '(' (arg (',' arg)* ','?)? ')'
  ;

arg
  : (name=ident '=')? expr
  ;

primary
  : NUMBER                                   # numberLit
  | QUANTITY                                 # quantityLit
  | SHAPE                                    # shapeLit
  | STRING                                   # stringLit
  | value=('true' | 'false')                 # boolLit
  | ID                                       # nameRef
  | '(' expr ')'                             # parenExpr
  | '[' (expr (',' expr)* ','?)? ']'         # listLit
  | '{' (recordField (',' recordField)* ','?)? '}'   # recordLit
  ;

// A field of a record literal: `{ channels = ["t1"], label = regression }`.
recordField
  : name=ident '=' expr
  ;

// A shape literal: 160x192x160 (one token, so `x` is never an identifier here).
SHAPE    : INT ('x' INT)+ ;
// A number with a unit suffix: 1mm, 60%, 4vox. The checker validates the unit.
QUANTITY : NUM_BODY ([a-zA-Z]+ | '%') ;
NUMBER   : NUM_BODY ;
ID       : [a-zA-Z_] [a-zA-Z_0-9]* ;
STRING   : '"' (~["\\\r\n] | '\\' .)* '"' ;

// A string without its closing quote on its line (a STRING, when there is one, is longer
// and wins); the parser reports it as such.
UNTERMINATED_STRING : '"' (~["\\\r\n] | '\\' ~[\r\n])* '\\'? ;

LINE_COMMENT  : '//' ~[\r\n]* -> channel(HIDDEN) ;
BLOCK_COMMENT : '/*' .*? '*/' -> channel(HIDDEN) ;
// A block comment that never ends: never longer than a BLOCK_COMMENT, which wins when
// there is a closing '*/'; without one it runs to the end of the file.
UNTERMINATED_COMMENT : '/*' (~'*' | '*'+ ~[*/])* '*'* ;
WS            : [ \t\r\n]+ -> skip ;
// Anything else is one bad character; the parser reports it with its location.
BAD_CHAR      : . ;

fragment INT      : [0-9]+ ;
fragment NUM_BODY : INT ('.' INT)? ([eE] [+-]? INT)? ;
